"""The benchmark generators (ACGAN, the CIFAR-10 SNGAN, BigGAN-deep for ImageNet10), their output transforms, training
and sample-quality checks."""
