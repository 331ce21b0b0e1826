"""topowatch: watch the neuron manifold of a neural network evolve while it trains."""

__version__ = "0.1.0"
