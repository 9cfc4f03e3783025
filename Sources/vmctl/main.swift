// vmctl: everything is in VmctlCommands (the commands in VmctlCommand.swift).
import VmctlCommands

Vmctl.main()
