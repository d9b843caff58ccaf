"""The synthetic store world: renders scenario directories (SPEC section 2) with ground truth."""
