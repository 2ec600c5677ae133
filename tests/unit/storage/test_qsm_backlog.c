#include "qsm_fixture.h"
Test(x, y) {}
