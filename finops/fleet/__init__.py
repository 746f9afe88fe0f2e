"""Sites, nodes, GPUs, storage devices and the GPU model catalog."""
