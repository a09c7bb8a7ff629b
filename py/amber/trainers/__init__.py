"""amber.trainers: what feeds fit/evaluate/predict (mirrors keras.src.trainers).

``data_adapters`` turns Python generators and ``PyDataset`` objects into batches;
``epoch_iterator`` decides how many of those batches make one epoch.
"""
