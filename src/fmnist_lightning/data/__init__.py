"""Fashion-MNIST on disk and in memory; imports nothing else of the project."""
