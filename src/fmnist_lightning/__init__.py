"""fmnist-lightning."""
