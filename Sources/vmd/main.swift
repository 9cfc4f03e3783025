// vmd: everything is in VMDaemon (the commands in VmdCommand.swift).
import VMDaemon

Vmd.main()
