// The virtio-rng process: everything is in EntropyDevice (EntropyProcessMain).
import EntropyDevice

EntropyProcessMain.run()
