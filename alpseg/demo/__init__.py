"""The embedded default (miniature Table 3) and open-vocabulary inference on any images."""
