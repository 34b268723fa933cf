"""The demo: the Skype for Business reference deployment on loopback, with sample back ends."""
