// The virtio-net process: everything is in NetDevice (NetProcessMain).
import NetDevice

NetProcessMain.run()
