"""The ``edgeflow`` commands by area; each module's ``register`` adds its commands to the app."""
