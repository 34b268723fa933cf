"""Scripted deployment of Passerelle appliances on vSphere and Hyper-V, single or HA pair."""
