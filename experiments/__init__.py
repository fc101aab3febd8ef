"""The paper's experiments, beside the library: ``arma video`` (Table 3/4), and the shared
training, checkpoint and result-table machinery they run on.

Installed as the import package ``arma_experiments`` (from the source folder ``experiments/``)
with the ``experiments`` extra, which brings its dependencies (Lightning Fabric, torchmetrics,
matplotlib, tqdm, the MNIST digits). The library (``arma_core``) never imports it; the
``arma`` command finds its subcommands through the ``arma_nets.commands`` entry points.
"""
