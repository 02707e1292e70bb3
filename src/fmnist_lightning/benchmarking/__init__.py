"""The benchmark command's measurements: clocks and timed windows, the plain and textbook
loops it compares the Trainer with, FLOPs against the matmul peak, and the machine."""
