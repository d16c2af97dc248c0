"""The math of one update, free of environments and files: action distributions, the trust-region step
(Fisher products, conjugate gradient, line search), advantages, networks, running normalisation, seeding."""
