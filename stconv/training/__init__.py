"""Training: the loss, the jitted train step, mixed precision, devices and checkpoints.

- `losses`: the paper's RMSE loss;
- `step`: the optimizer, the jitted train step and forecast, one epoch;
- `loop`: `fit`, the epoch loop with validation, early stopping and checkpoints;
- `precision`: bfloat16 computation with float32 state;
- `distributed`: devices, the data mesh, shardings, several hosts;
- `checkpoints`: orbax checkpoints of the latest and the best epoch;
- `heap`: the compiler's freed memory given back after each compile.
"""
