// The emulator's stand-in for CUDA's cuda_runtime.h: everything a kernel needs is already in
// cuda_device.h, which cuda_emulator.py includes in front of every kernel source.
#pragma once
