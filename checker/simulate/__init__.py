"""Simulation in virtual time: cost model, driver, published data, calibration, report, plot."""
