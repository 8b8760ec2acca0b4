"""The networks (encoder E / classifier C, generator G, image and latent critics) and the losses that train them."""
