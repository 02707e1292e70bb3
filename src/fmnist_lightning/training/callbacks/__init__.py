"""Lightning callbacks of a training run, one per module, listed in conf/callbacks/default.yaml."""
