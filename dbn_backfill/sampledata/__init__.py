"""Realistic sample data (not on the runtime path): a DBN encoder and the MGC generator."""
