// The emulator's stand-in for CUDA's cuda_runtime.h: everything a kernel needs is already in
// cuda_device.h, which emulator/__init__.py includes in front of every kernel source.
#pragma once
