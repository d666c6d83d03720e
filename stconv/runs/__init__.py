"""Runs: the application layer on top of the library.

- `directory`: a run's files (`RunDirectory`), its lock and its JSON records;
- `provenance`: what made a run (software, inputs, sessions);
- `assembly`: a run's dataset and model, built from its configuration;
- `experiment`: training and testing a run (`train_and_evaluate`);
- `trained`: the frozen value of a trained run (`TrainedRun`);
- `forecaster`: a finished run as a forecaster of new data (`Forecaster`);
- `reporting`: tables and summaries of a run's scores;
- `presentation`: how each score is shown (its label, columns and plot panel).
"""
