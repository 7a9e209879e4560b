"""The bottom layer: tensor operations, file I/O, settings checks and the contract between
methods, data and callbacks. It imports nothing else of the project; `datamodules` and
`lightning_modules.networks` build on it, the LightningModules on those, the callbacks on the
contract alone, and the CLI (`lightning_modules.cli`) on everything."""
