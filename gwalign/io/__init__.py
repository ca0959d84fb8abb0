"""Reading and checking inputs, writing outputs atomically."""
