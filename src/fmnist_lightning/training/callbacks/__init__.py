"""Lightning callbacks of a training run, one per module, listed in conf/callbacks/default.yaml;
``logging_steps`` says when they may read tensors back from the device."""
