// Empty: the header only declares libFuzzer's driver (see include/FuzzSupport.h).
#include "FuzzSupport.h"
