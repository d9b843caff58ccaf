"""The store side of walkout: config, sessions, baskets, charges, the API and the replay harness."""
