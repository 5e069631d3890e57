"""Training: shard streaming, optimizer, loop, checkpoints, device meshes. Never imports Beam."""
