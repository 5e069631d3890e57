"""glamkit's command line and end-to-end pipeline: the layer on top that drives data_specs, filters, pipelines,
model, train and eval. Importing it imports none of them."""

__version__ = "0.1.0"
