"""Worlds whose answers are known in closed form, and the checks that hold the product loop against them."""
