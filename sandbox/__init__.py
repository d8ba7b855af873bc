"""Worlds whose answers are known in closed form: the analytic sandbox (a vectorised loop on points) and the known
world, perfect generators and filter that hold the product loop (``cli.py fit``) against them."""
