// CXXHash: Debian's libxxhash (XXH3), the checksum of snapshot sections.
#include <xxhash.h>
