"""kind: pinned releases, node images, cluster configuration and the binary download."""
