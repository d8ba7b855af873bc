"""The analytic sandbox: the loop on a known world of points, checked against closed-form answers."""
