"""Text-to-image diffusion (stage=text_to_image): a denoiser conditioned on a prompt through
cross-attention, trained on captions of labelled images, guided by classifier-free guidance
against the empty prompt."""
