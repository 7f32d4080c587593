// The emulator's stand-in for CUDA's math_constants.h: the CUDART_* constants are defined in
// cuda_device.h, which cuda_emulator.py includes in front of every kernel source.
#pragma once
