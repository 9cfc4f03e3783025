// The virtio-blk process: everything is in BlockDevice (BlockProcessMain).
import BlockDevice

BlockProcessMain.run()
