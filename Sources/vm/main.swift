// The vm process: everything is in VMCore (VMProcessMain).
import VMCore

VMProcessMain.run()
