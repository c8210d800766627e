"""Pictures of the diffusion process, apart from any training loop: x_t strips and the animated
reverse process (used by the dashboard callbacks and by ``scripts/visualize.py``)."""
