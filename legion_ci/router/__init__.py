"""The A/B router: one stable URL in front of the model servers, traffic shared by the registry's weights."""
