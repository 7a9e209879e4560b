"""nn.Modules and losses shared by the methods."""
