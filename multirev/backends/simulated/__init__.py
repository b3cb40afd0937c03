"""A behavioural model of a kind cluster running Istio, driven by the same argv and manifests."""
