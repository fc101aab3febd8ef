"""Video prediction on Moving-MNIST (the paper's Table 3): data, metrics, training, ``arma video``."""
