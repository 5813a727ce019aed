"""Deterministic synthetic laptop records in the layout of the public laptop-price CSV.

Tests, demos and benchmarks need realistic raw records without shipping (or reading) the
public data set. :func:`generate_laptops` draws them from small literal vocabulary tables
whose strings and rough frequencies follow the public file, with coherent combinations
(gaming machines get GeForce GTX cards and heavy 15.6"/17.3" chassis, netbooks get
Celeron/Atom CPUs and flash storage, Apple gets macOS and Retina screens, ...).

``Price`` is in the public file's unit (Indian rupees) and is driven by the specification
the way real prices are: ``log(Price)`` is a sum of effects of RAM (log), SSD size, CPU
class and clock, GPU class, pixel density, touch/IPS panel, brand, type, operating system
and (type-relative) weight, plus Gaussian noise with standard deviation 0.19. A linear
model on the engineered features therefore explains most but not all of ``log(Price)``.

Every random draw comes from one ``numpy.random.default_rng(seed)`` stream in a fixed
order, and all tables are ordered literals, so the output depends only on ``(n, seed)``.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .errors import InputError, OutputError

__all__ = ["LAPTOP_COLUMNS", "generate_laptops", "write_laptops_csv"]

LAPTOP_COLUMNS: tuple[str, ...] = (
    "Company", "TypeName", "Inches", "ScreenResolution", "Cpu", "Ram", "Memory", "Gpu",
    "OpSys", "Weight", "Price",
)

NB, GM, UB, CV, WS, NT = (
    "Notebook", "Gaming", "Ultrabook", "2 in 1 Convertible", "Workstation", "Netbook",
)
_BUDGET = "budget"  # table group for budget CPUs / budget brands

# ----------------------------------------------------------------------------- tables
# Each table maps a group to an ordered {value: relative frequency} literal.

_TYPES = {NB: 727, GM: 205, UB: 196, CV: 121, WS: 29, NT: 25}

_COMPANIES = {
    NB: {"Acer": 78, "Asus": 67, "Chuwi": 3, "Dell": 165, "Fujitsu": 3, "HP": 184,
         "Lenovo": 178, "Mediacom": 6, "Samsung": 1, "Toshiba": 36, "Vero": 4, "Xiaomi": 2},
    GM: {"Acer": 8, "Asus": 54, "Dell": 40, "HP": 12, "Lenovo": 32, "MSI": 54, "Razer": 5},
    UB: {"Acer": 4, "Apple": 21, "Asus": 20, "Dell": 49, "Google": 3, "HP": 36, "Huawei": 2,
         "LG": 3, "Lenovo": 31, "Microsoft": 6, "Razer": 2, "Samsung": 5, "Toshiba": 12,
         "Xiaomi": 2},
    CV: {"Acer": 8, "Asus": 13, "Dell": 30, "HP": 19, "Lenovo": 48, "Mediacom": 1,
         "Samsung": 2},
    WS: {"Dell": 11, "HP": 14, "Lenovo": 4},
    NT: {"Acer": 5, "Asus": 4, "Dell": 2, "HP": 9, "Lenovo": 4, "Samsung": 1},
}
_BUDGET_BRANDS = ("Chuwi", "Mediacom", "Vero")

_INCHES = {
    NB: {15.6: 496, 14.0: 119, 17.3: 63, 13.3: 44, 11.6: 2, 12.3: 1, 14.1: 1, 17.0: 1},
    GM: {15.6: 106, 17.3: 93, 14.0: 5, 18.4: 1},
    UB: {13.3: 69, 14.0: 53, 12.5: 30, 15.6: 20, 12.0: 6, 12.3: 3, 13.0: 2, 15.0: 2},
    CV: {13.3: 51, 14.0: 20, 15.6: 20, 11.6: 11, 13.9: 6, 10.1: 4, 12.5: 3, 17.3: 2,
         15.0: 2, 11.3: 1},
    WS: {15.6: 23, 17.3: 6},
    NT: {11.6: 19, 12.5: 6},
}

# name: (log-price premium, integrated GPU, kind). kind: budget | main | high | low | xeon
# | amd_budget | amd_main | amd_perf | arm. The clock is part of the name, as in the data.
_CPU_INFO = {
    "Intel Core i5 7200U 2.5GHz": (0.22, "Intel HD Graphics 620", "main"),
    "Intel Core i7 7700HQ 2.8GHz": (0.45, "Intel HD Graphics 630", "high"),
    "Intel Core i7 7500U 2.7GHz": (0.34, "Intel HD Graphics 620", "main"),
    "Intel Core i7 8550U 1.8GHz": (0.40, "Intel UHD Graphics 620", "main"),
    "Intel Core i5 8250U 1.6GHz": (0.27, "Intel UHD Graphics 620", "main"),
    "Intel Core i5 6200U 2.3GHz": (0.17, "Intel HD Graphics 520", "main"),
    "Intel Core i3 6006U 2GHz": (0.00, "Intel HD Graphics 520", "main"),
    "Intel Core i7 6500U 2.5GHz": (0.30, "Intel HD Graphics 520", "main"),
    "Intel Core i7 6700HQ 2.6GHz": (0.42, "Intel HD Graphics 530", "high"),
    "Intel Core i3 7100U 2.4GHz": (0.03, "Intel HD Graphics 620", "main"),
    "Intel Core i5 7300HQ 2.5GHz": (0.32, "Intel HD Graphics 630", "high"),
    "Intel Celeron Dual Core N3350 1.1GHz": (-0.40, "Intel HD Graphics 500", "budget"),
    "Intel Celeron Dual Core N3060 1.6GHz": (-0.45, "Intel HD Graphics 400", "budget"),
    "Intel Core i7 6600U 2.6GHz": (0.38, "Intel HD Graphics 520", "main"),
    "Intel Core i3 6006U 2.0GHz": (0.00, "Intel HD Graphics 520", "main"),
    "Intel Pentium Quad Core N4200 1.1GHz": (-0.30, "Intel HD Graphics 505", "budget"),
    "Intel Core i5 7300U 2.6GHz": (0.26, "Intel HD Graphics 620", "main"),
    "Intel Core i7 7600U 2.8GHz": (0.42, "Intel HD Graphics 620", "main"),
    "AMD A9-Series 9420 3GHz": (-0.18, "AMD Radeon R5", "amd_main"),
    "Intel Pentium Quad Core N3710 1.6GHz": (-0.32, "Intel HD Graphics 405", "budget"),
    "Intel Core i5 6300U 2.4GHz": (0.21, "Intel HD Graphics 520", "main"),
    "Intel Celeron Dual Core N3050 1.6GHz": (-0.48, "Intel HD Graphics", "budget"),
    "Intel Core i7 6820HK 2.7GHz": (0.55, "Intel HD Graphics 530", "high"),
    "Intel Core i3 6100U 2.3GHz": (-0.02, "Intel HD Graphics 520", "main"),
    "Intel Core i3 7130U 2.7GHz": (0.04, "Intel HD Graphics 620", "main"),
    "AMD A6-Series 9220 2.5GHz": (-0.28, "AMD Radeon R4 Graphics", "amd_budget"),
    "Intel Core i7 7820HK 2.9GHz": (0.62, "Intel HD Graphics 630", "high"),
    "Intel Core i7 6820HQ 2.7GHz": (0.50, "Intel HD Graphics 530", "high"),
    "Intel Core i5 6300HQ 2.3GHz": (0.28, "Intel HD Graphics 530", "high"),
    "Intel Atom x5-Z8350 1.44GHz": (-0.52, "Intel HD Graphics 400", "budget"),
    "Intel Core M 6Y75 1.2GHz": (0.22, "Intel HD Graphics 515", "low"),
    "Intel Core i7 7820HQ 2.9GHz": (0.56, "Intel HD Graphics 630", "high"),
    "AMD A12-Series 9720P 3.6GHz": (-0.06, "AMD Radeon R7", "amd_main"),
    "Intel Celeron Quad Core N3450 1.1GHz": (-0.38, "Intel HD Graphics 500", "budget"),
    "Intel Core i7 7Y75 1.3GHz": (0.30, "Intel HD Graphics 615", "low"),
    "Intel Core i5 7440HQ 2.8GHz": (0.34, "Intel HD Graphics 630", "high"),
    "Intel Atom x5-Z8550 1.44GHz": (-0.42, "Intel HD Graphics 400", "budget"),
    "Intel Celeron Dual Core 3205U 1.5GHz": (-0.46, "Intel HD Graphics", "budget"),
    "AMD A8-Series 7410 2.2GHz": (-0.20, "AMD Radeon R5", "amd_main"),
    "AMD Ryzen 1700 3GHz": (0.30, "AMD Radeon R7", "amd_perf"),
    "Intel Core i5 7Y54 1.2GHz": (0.18, "Intel HD Graphics 615", "low"),
    "Intel Celeron Dual Core 3855U 1.6GHz": (-0.44, "Intel HD Graphics 510", "budget"),
    "Intel Core i7 7660U 2.5GHz": (0.45, "Intel Iris Plus Graphics 640", "main"),
    "AMD A9-Series 9410 2.9GHz": (-0.19, "AMD Radeon R5", "amd_main"),
    "Intel Core M 6Y30 0.9GHz": (0.10, "Intel HD Graphics 515", "low"),
    "AMD E-Series E2-9000e 1.5GHz": (-0.50, "AMD Radeon R2", "amd_budget"),
    "Intel Core i7 8650U 1.9GHz": (0.44, "Intel UHD Graphics 620", "main"),
    "Intel Core i7 7560U 2.4GHz": (0.40, "Intel Iris Plus Graphics 640", "main"),
    "Intel Xeon E3-1505M V6 3GHz": (0.62, "Intel HD Graphics 630", "xeon"),
    "AMD A10-Series 9620P 2.5GHz": (-0.10, "AMD Radeon R5", "amd_main"),
    "AMD E-Series 7110 1.8GHz": (-0.48, "AMD Radeon R2", "amd_budget"),
    "Intel Celeron Quad Core N3160 1.6GHz": (-0.40, "Intel HD Graphics 400", "budget"),
    "Intel Pentium Quad Core N3700 1.6GHz": (-0.34, "Intel HD Graphics 405", "budget"),
    "AMD FX 9830P 3GHz": (0.05, "AMD Radeon R7", "amd_perf"),
    "Intel Xeon E3-1535M v6 3.1GHz": (0.70, "Intel HD Graphics 630", "xeon"),
    "Intel Pentium Dual Core 4405U 2.1GHz": (-0.30, "Intel HD Graphics 510", "budget"),
    "Intel Core i5 6440HQ 2.6GHz": (0.33, "Intel HD Graphics 530", "high"),
    "Intel Core i7 6920HQ 2.9GHz": (0.58, "Intel HD Graphics 530", "xeon"),
    # used by the fixed model profiles below
    "Intel Core i5 2.3GHz": (0.25, "Intel Iris Plus Graphics 640", "main"),
    "Intel Core i5 3.1GHz": (0.32, "Intel Iris Plus Graphics 650", "main"),
    "Intel Core i5 1.8GHz": (0.12, "Intel HD Graphics 6000", "main"),
    "Intel Core i7 2.8GHz": (0.45, "AMD Radeon Pro 555", "high"),
    "Intel Core i7 2.9GHz": (0.50, "AMD Radeon Pro 560", "high"),
    "Intel Core M m3 1.2GHz": (0.10, "Intel HD Graphics 615", "low"),
    "Intel Core i5 7Y57 1.2GHz": (0.20, "Intel HD Graphics 615", "low"),
    "Samsung Cortex A72&A53 2.0GHz": (-0.15, "ARM Mali T860 MP4", "arm"),
}

_CPUS = {
    NB: {"Intel Core i5 7200U 2.5GHz": 120, "Intel Core i7 7700HQ 2.8GHz": 22,
         "Intel Core i7 7500U 2.7GHz": 60, "Intel Core i7 8550U 1.8GHz": 32,
         "Intel Core i5 8250U 1.6GHz": 45, "Intel Core i5 6200U 2.3GHz": 52,
         "Intel Core i3 6006U 2GHz": 58, "Intel Core i3 6006U 2.0GHz": 14,
         "Intel Core i7 6500U 2.5GHz": 30, "Intel Core i7 6700HQ 2.6GHz": 8,
         "Intel Core i3 7100U 2.4GHz": 34, "Intel Core i5 7300HQ 2.5GHz": 5,
         "Intel Celeron Dual Core N3350 1.1GHz": 18, "Intel Celeron Dual Core N3060 1.6GHz": 17,
         "Intel Core i7 6600U 2.6GHz": 8, "Intel Pentium Quad Core N4200 1.1GHz": 10,
         "Intel Core i5 7300U 2.6GHz": 6, "Intel Core i7 7600U 2.8GHz": 5,
         "AMD A9-Series 9420 3GHz": 13, "Intel Pentium Quad Core N3710 1.6GHz": 9,
         "Intel Core i5 6300U 2.4GHz": 6, "Intel Celeron Dual Core N3050 1.6GHz": 7,
         "Intel Core i3 6100U 2.3GHz": 9, "Intel Core i3 7130U 2.7GHz": 8,
         "AMD A6-Series 9220 2.5GHz": 10, "Intel Core i7 6820HQ 2.7GHz": 2,
         "Intel Core i5 6300HQ 2.3GHz": 3, "Intel Atom x5-Z8350 1.44GHz": 4,
         "AMD A12-Series 9720P 3.6GHz": 7, "Intel Celeron Quad Core N3450 1.1GHz": 4,
         "Intel Core i5 7440HQ 2.8GHz": 4, "Intel Celeron Dual Core 3205U 1.5GHz": 4,
         "AMD A8-Series 7410 2.2GHz": 4, "Intel Celeron Dual Core 3855U 1.6GHz": 3,
         "AMD A9-Series 9410 2.9GHz": 3, "AMD E-Series E2-9000e 1.5GHz": 3,
         "AMD A10-Series 9620P 2.5GHz": 4, "AMD E-Series 7110 1.8GHz": 2,
         "Intel Celeron Quad Core N3160 1.6GHz": 2, "Intel Pentium Quad Core N3700 1.6GHz": 2,
         "Intel Pentium Dual Core 4405U 2.1GHz": 3},
    GM: {"Intel Core i7 7700HQ 2.8GHz": 120, "Intel Core i7 6700HQ 2.6GHz": 33,
         "Intel Core i5 7300HQ 2.5GHz": 28, "Intel Core i7 6820HK 2.7GHz": 10,
         "Intel Core i7 7820HK 2.9GHz": 7, "Intel Core i5 6300HQ 2.3GHz": 4,
         "AMD Ryzen 1700 3GHz": 3, "AMD FX 9830P 3GHz": 1},
    UB: {"Intel Core i7 8550U 1.8GHz": 28, "Intel Core i5 8250U 1.6GHz": 22,
         "Intel Core i7 7500U 2.7GHz": 40, "Intel Core i5 7200U 2.5GHz": 35,
         "Intel Core i5 6200U 2.3GHz": 10, "Intel Core i7 6500U 2.5GHz": 10,
         "Intel Core i7 6600U 2.6GHz": 7, "Intel Core i7 7600U 2.8GHz": 6,
         "Intel Core i5 7300U 2.6GHz": 6, "Intel Core i5 6300U 2.4GHz": 4,
         "Intel Core M 6Y75 1.2GHz": 4, "Intel Core i7 7Y75 1.3GHz": 3,
         "Intel Core i5 7Y54 1.2GHz": 3, "Intel Core i7 8650U 1.9GHz": 2,
         "Intel Core i7 7560U 2.4GHz": 2, "Intel Core i7 7660U 2.5GHz": 2,
         "Intel Core M 6Y30 0.9GHz": 2, "Intel Core i3 7100U 2.4GHz": 2},
    CV: {"Intel Core i7 7500U 2.7GHz": 24, "Intel Core i5 7200U 2.5GHz": 15,
         "Intel Core i7 8550U 1.8GHz": 14, "Intel Core i5 8250U 1.6GHz": 10,
         "Intel Core i5 6200U 2.3GHz": 6, "Intel Core i7 6500U 2.5GHz": 8,
         "Intel Core i3 7100U 2.4GHz": 3, "Intel Core i3 6006U 2GHz": 2,
         "Intel Core M 6Y75 1.2GHz": 2, "Intel Core i7 7Y75 1.3GHz": 2,
         "Intel Core i5 7Y54 1.2GHz": 1, "Intel Celeron Dual Core N3350 1.1GHz": 4,
         "Intel Celeron Dual Core N3060 1.6GHz": 3, "Intel Pentium Quad Core N4200 1.1GHz": 2,
         "Intel Atom x5-Z8550 1.44GHz": 4, "Intel Celeron Quad Core N3450 1.1GHz": 1},
    WS: {"Intel Core i7 7700HQ 2.8GHz": 9, "Intel Core i7 7820HQ 2.9GHz": 5,
         "Intel Core i7 6820HQ 2.7GHz": 5, "Intel Xeon E3-1505M V6 3GHz": 2,
         "Intel Xeon E3-1535M v6 3.1GHz": 2, "Intel Core i7 6920HQ 2.9GHz": 1,
         "Intel Core i5 7440HQ 2.8GHz": 1, "Intel Core i5 6440HQ 2.6GHz": 1,
         "Intel Core i7 7500U 2.7GHz": 2, "Intel Core i7 8650U 1.9GHz": 1},
    NT: {"Intel Celeron Dual Core N3060 1.6GHz": 7, "Intel Celeron Dual Core N3350 1.1GHz": 6,
         "Intel Celeron Dual Core N3050 1.6GHz": 4, "Intel Pentium Quad Core N4200 1.1GHz": 2,
         "Intel Atom x5-Z8350 1.44GHz": 2, "Intel Celeron Quad Core N3450 1.1GHz": 1,
         "Intel Pentium Quad Core N3710 1.6GHz": 1, "Intel Core i5 7200U 2.5GHz": 2,
         "Intel Core i7 7500U 2.7GHz": 1},
    _BUDGET: {"Intel Atom x5-Z8350 1.44GHz": 5, "Intel Celeron Dual Core N3350 1.1GHz": 3,
              "Intel Celeron Quad Core N3450 1.1GHz": 3},
}

_RAM = {
    NB: {4: 260, 8: 312, 16: 32, 6: 39, 12: 10, 2: 4, 32: 2},
    GM: {8: 81, 16: 99, 32: 14, 12: 7, 24: 2, 64: 1, 4: 1},
    UB: {8: 140, 16: 36, 4: 14, 12: 3, 6: 1, 24: 1, 32: 1},
    CV: {8: 62, 4: 20, 16: 23, 12: 5, 6: 1},
    WS: {8: 20, 16: 9, 32: 2},
    NT: {4: 5, 8: 4, 16: 1},
    _BUDGET: {2: 20, 4: 60, 6: 3, 8: 8},
}

_MEMORY = {
    NB: {"256GB SSD": 215, "1TB HDD": 187, "500GB HDD": 123, "128GB SSD": 56,
         "128GB SSD +  1TB HDD": 33, "512GB SSD": 21, "2TB HDD": 15, "1.0TB Hybrid": 7,
         "256GB SSD +  1TB HDD": 6, "256GB SSD +  2TB HDD": 6, "1TB SSD": 4, "180GB SSD": 3,
         "128GB SSD +  2TB HDD": 2, "256GB SSD +  500GB HDD": 2, "1.0TB HDD": 1,
         "508GB Hybrid": 1, "1TB HDD +  1TB HDD": 1},
    GM: {"256GB SSD +  1TB HDD": 65, "128GB SSD +  1TB HDD": 60, "1TB HDD": 25,
         "256GB SSD": 17, "512GB SSD +  1TB HDD": 14, "512GB SSD": 9,
         "256GB SSD +  2TB HDD": 4, "1TB SSD": 3, "1TB SSD +  1TB HDD": 2, "1.0TB Hybrid": 2,
         "256GB SSD +  1.0TB Hybrid": 1, "512GB SSD +  1.0TB Hybrid": 1,
         "256GB SSD +  256GB SSD": 1, "512GB SSD +  2TB HDD": 1},
    UB: {"256GB SSD": 107, "512GB SSD": 54, "128GB SSD": 9, "256GB Flash Storage": 4,
         "1TB SSD": 3, "500GB HDD": 3, "180GB SSD": 2, "128GB SSD +  1TB HDD": 1,
         "256GB SSD +  1TB HDD": 1, "240GB SSD": 1, "512GB SSD +  256GB SSD": 1,
         "1TB HDD": 1, "256GB SSD +  256GB SSD": 1},
    CV: {"256GB SSD": 56, "512GB SSD": 26, "1TB HDD": 8, "128GB SSD": 6, "500GB HDD": 3,
         "1TB SSD": 3, "512GB SSD +  2TB HDD": 2, "2TB HDD": 1, "512GB SSD +  512GB SSD": 1},
    WS: {"256GB SSD": 15, "512GB SSD": 5, "500GB HDD": 3, "1TB HDD": 2, "1TB SSD": 1,
         "256GB SSD +  1TB HDD": 1, "64GB Flash Storage +  1TB HDD": 1},
    NT: {"128GB SSD": 5, "256GB SSD": 3, "512GB SSD": 1},
    _BUDGET: {"32GB Flash Storage": 30, "64GB Flash Storage": 10, "16GB Flash Storage": 6,
              "32GB SSD": 5, "128GB SSD": 8, "500GB HDD": 20, "1TB HDD": 12, "16GB SSD": 2,
              "64GB SSD": 1, "32GB HDD": 1, "128GB Flash Storage": 2},
}

# Discrete GPUs by group; integrated GPUs come from _CPU_INFO.
_DISCRETE = {
    "gaming": {"Nvidia GeForce GTX 1050": 50, "Nvidia GeForce GTX 1060": 46,
               "Nvidia GeForce GTX 1070": 30, "Nvidia GeForce GTX 1050 Ti": 28,
               "Nvidia GeForce GTX 960M": 10, "Nvidia GeForce GTX 980M": 10,
               "Nvidia GeForce GTX 1080": 7, "Nvidia GeForce GTX 970M": 5,
               "Nvidia GeForce GTX 965M": 4, "Nvidia GeForce GTX 1050M": 2,
               "Nvidia GeForce GTX 960": 2, "Nvidia GeForce GTX 980": 1,
               "Nvidia GTX 980 SLI": 1, "Nvidia GeForce GTX 1070M": 1},
    "gaming_amd": {"AMD Radeon RX 580": 5, "AMD Radeon RX 560": 1, "AMD Radeon R9 M385": 1},
    "mainstream": {"Nvidia GeForce 940MX": 40, "Nvidia GeForce 930MX": 25,
                   "Nvidia GeForce 920MX": 18, "Nvidia GeForce MX150": 15,
                   "Nvidia GeForce MX130": 6, "Nvidia GeForce 920M": 6,
                   "Nvidia GeForce 930M": 6, "Nvidia GeForce 150MX": 3,
                   "Nvidia GeForce GT 940MX": 5, "Nvidia GeForce GTX 940MX": 4,
                   "Nvidia GeForce GTX 950M": 7, "Nvidia GeForce GTX 1050": 17,
                   "Nvidia GeForce GTX 960M": 6, "Nvidia GeForce GTX 1060": 2,
                   "AMD Radeon 530": 41, "AMD Radeon 520": 17, "AMD Radeon R7 M445": 10,
                   "AMD Radeon RX 550": 4, "AMD Radeon RX 540": 2, "AMD Radeon 540": 1,
                   "AMD Radeon R7 M460": 2, "AMD R17M-M1-70": 1, "Nvidia Quadro M2200M": 2},
    "mainstream_amd": {"AMD Radeon R5 M430": 22, "AMD Radeon R7 M440": 5,
                       "AMD Radeon 530": 6, "AMD Radeon R5 M420": 8, "AMD Radeon R7 M445": 4,
                       "AMD Radeon R5 M330": 7, "AMD Radeon R5 M420X": 3},
    "workstation": {"Nvidia Quadro M1200": 9, "Nvidia Quadro M620": 5,
                    "Nvidia Quadro M1000M": 4, "Nvidia Quadro M2200M": 3,
                    "Nvidia Quadro M2200": 2, "Nvidia Quadro M2000M": 2,
                    "Nvidia Quadro M520M": 2, "Nvidia Quadro M3000M": 1,
                    "Nvidia Quadro 3000M": 1, "AMD FirePro W4190M": 2,
                    "AMD FirePro W5130M": 1, "AMD FirePro W6150M": 1},
}
_DISCRETE_SHARE = {NB: 0.35, GM: 1.0, UB: 0.12, CV: 0.08, WS: 0.95, NT: 0.0}

# Log-price premium of each GPU over a plain Intel HD part.
_GPU_PREMIUM = {
    "Intel HD Graphics": -0.05, "Intel HD Graphics 400": -0.05, "Intel HD Graphics 405": -0.04,
    "Intel HD Graphics 500": -0.03, "Intel HD Graphics 505": -0.02,
    "Intel HD Graphics 510": -0.02, "Intel HD Graphics 515": 0.0, "Intel HD Graphics 520": 0.0,
    "Intel HD Graphics 530": 0.0, "Intel HD Graphics 615": 0.02, "Intel HD Graphics 620": 0.0,
    "Intel UHD Graphics 620": 0.03, "Intel HD Graphics 630": 0.0, "Intel HD Graphics 6000": 0.0,
    "Intel Iris Plus Graphics 640": 0.10, "Intel Iris Plus Graphics 650": 0.14,
    "Intel Iris Graphics 540": 0.08, "Intel Iris Graphics 550": 0.10,
    "Intel Iris Pro Graphics": 0.12,
    "AMD Radeon R2": -0.05, "AMD Radeon R4 Graphics": -0.03, "AMD Radeon R5": 0.0,
    "AMD Radeon R7": 0.02,
    "Nvidia GeForce 920M": 0.03, "Nvidia GeForce 920MX": 0.04, "Nvidia GeForce 930M": 0.04,
    "Nvidia GeForce 930MX": 0.05, "Nvidia GeForce 940MX": 0.07,
    "Nvidia GeForce GT 940MX": 0.07, "Nvidia GeForce GTX 940MX": 0.07,
    "Nvidia GeForce MX130": 0.06, "Nvidia GeForce MX150": 0.10, "Nvidia GeForce 150MX": 0.10,
    "Nvidia GeForce GTX 950M": 0.10, "Nvidia GeForce GTX 960M": 0.14,
    "Nvidia GeForce GTX 960": 0.14, "Nvidia GeForce GTX 965M": 0.18,
    "Nvidia GeForce GTX 970M": 0.25, "Nvidia GeForce GTX 980M": 0.32,
    "Nvidia GeForce GTX 980": 0.36, "Nvidia GTX 980 SLI": 0.45,
    "Nvidia GeForce GTX 1050": 0.12, "Nvidia GeForce GTX 1050M": 0.12,
    "Nvidia GeForce GTX 1050 Ti": 0.18, "Nvidia GeForce GTX 1060": 0.30,
    "Nvidia GeForce GTX 1070": 0.45, "Nvidia GeForce GTX 1070M": 0.45,
    "Nvidia GeForce GTX 1080": 0.65,
    "AMD Radeon 520": 0.02, "AMD Radeon 530": 0.04, "AMD Radeon 540": 0.06,
    "AMD Radeon R5 M330": 0.01, "AMD Radeon R5 M420": 0.02, "AMD Radeon R5 M420X": 0.02,
    "AMD Radeon R5 M430": 0.03, "AMD Radeon R7 M440": 0.04, "AMD Radeon R7 M445": 0.05,
    "AMD Radeon R7 M460": 0.06, "AMD R17M-M1-70": 0.03, "AMD Radeon RX 540": 0.07,
    "AMD Radeon RX 550": 0.08, "AMD Radeon RX 560": 0.15, "AMD Radeon RX 580": 0.30,
    "AMD Radeon R9 M385": 0.15,
    "AMD Radeon Pro 455": 0.20, "AMD Radeon Pro 555": 0.22, "AMD Radeon Pro 560": 0.25,
    "Nvidia Quadro M520M": 0.15, "Nvidia Quadro M620": 0.20, "Nvidia Quadro M1000M": 0.22,
    "Nvidia Quadro M1200": 0.28, "Nvidia Quadro M2000M": 0.32, "Nvidia Quadro M2200M": 0.38,
    "Nvidia Quadro M2200": 0.38, "Nvidia Quadro M3000M": 0.48, "Nvidia Quadro 3000M": 0.40,
    "AMD FirePro W4190M": 0.15, "AMD FirePro W5130M": 0.22, "AMD FirePro W6150M": 0.35,
    "ARM Mali T860 MP4": 0.0,
}

# Spellings of the public file that are variants of a canonical name: (variant, share).
_GPU_VARIANTS = {
    "Nvidia GeForce 930MX": ("Nvidia GeForce 930MX ", 0.2),
    "Nvidia GeForce 920MX": ("Nvidia GeForce 920MX ", 0.25),
    "Nvidia GeForce GTX 960M": ("Nvidia GeForce GTX 960<U+039C>", 0.15),
    "Nvidia GeForce GTX 1050 Ti": ("Nvidia GeForce GTX1050 Ti", 0.05),
    "Nvidia GeForce GTX 1060": ("Nvidia GeForce GTX1060", 0.03),
    "Nvidia GeForce GTX 1080": ("Nvidia GeForce GTX1080", 0.1),
    "Nvidia GeForce GTX 980": ("Nvidia GeForce GTX 980 ", 1.0),
    "AMD FirePro W4190M": ("AMD FirePro W4190M ", 0.5),
    "Intel HD Graphics 620": ("Intel HD Graphics 620 ", 0.005),
    "AMD Radeon R5": ("AMD Radeon R5 430", 0.05),
    "AMD Radeon R7": ("AMD Radeon R7 Graphics", 0.3),
    "AMD Radeon R2": ("AMD Radeon R2 Graphics", 0.4),
    "AMD Radeon R4 Graphics": ("AMD R4 Graphics", 0.1),
}
# Premium ultrabook / convertible designs swap the HD iGPU for an Iris one.
_IRIS_SWAP = {"Intel HD Graphics 620": "Intel Iris Plus Graphics 640",
              "Intel HD Graphics 520": "Intel Iris Graphics 540"}

_RESOLUTIONS = {
    NB: {"1366x768": 265, "1920x1080": 423, "1600x900": 22, "3840x2160": 11, "3200x1800": 3,
         "2560x1440": 1, "1920x1200": 1},
    GM: {"1920x1080": 190, "3840x2160": 13, "2560x1440": 2},
    UB: {"1920x1080": 122, "1366x768": 10, "3200x1800": 15, "3840x2160": 8, "2560x1440": 10,
         "2256x1504": 2, "2400x1600": 3, "2160x1440": 2},
    CV: {"1920x1080": 78, "1366x768": 12, "2560x1440": 10, "3200x1800": 9, "3840x2160": 7,
         "1920x1200": 4, "2400x1600": 1},
    WS: {"1920x1080": 24, "3840x2160": 4, "1600x900": 1},
    NT: {"1366x768": 21, "1920x1080": 4},
}
_IPS_SHARE = {NB: 0.20, GM: 0.30, UB: 0.45, CV: 0.40, WS: 0.40, NT: 0.08}
_TOUCH_SHARE = {NB: 0.05, GM: 0.02, UB: 0.20, CV: 0.88, WS: 0.04, NT: 0.06}
_RES_LABEL = {"1920x1080": ("Full HD", 0.99), "3840x2160": ("4K Ultra HD", 1.0),
              "3200x1800": ("Quad HD+", 1.0), "2560x1440": ("Quad HD+", 0.15),
              "2160x1440": ("Full HD", 1.0), "1920x1200": ("Full HD", 0.2)}

_OPSYS = {
    NB: {"Windows 10": 583, "No OS": 56, "Linux": 56, "Windows 7": 22, "Windows 10 S": 1},
    GM: {"Windows 10": 192, "No OS": 9, "Linux": 4},
    UB: {"Windows 10": 150, "Windows 7": 13, "Windows 10 S": 2, "Linux": 2, "No OS": 1},
    CV: {"Windows 10": 111, "Windows 7": 1},
    WS: {"Windows 10": 21, "Windows 7": 8},
    NT: {"Windows 10": 15, "Windows 7": 1, "Windows 10 S": 1},
    _BUDGET: {"Windows 10": 60, "Chrome OS": 20, "Linux": 5, "No OS": 3, "Windows 10 S": 1,
              "Android": 2},
}

# Weight model: kg at 15.6" for the type, kg per inch, noise sd, lightest, heaviest.
_WEIGHT = {NB: (2.15, 0.20, 0.22, 1.05, 4.42), GM: (2.65, 0.22, 0.40, 1.60, 4.70),
           UB: (1.80, 0.20, 0.15, 0.81, 2.20), CV: (2.05, 0.20, 0.20, 0.69, 2.80),
           WS: (2.35, 0.20, 0.28, 1.78, 3.60), NT: (2.10, 0.20, 0.12, 0.97, 2.40)}

# Complete designs of makers that only sell a few models:
# (Inches, ScreenResolution, Cpu options, Gpu, Ram options, Memory options, OpSys options,
#  Weight). Chosen uniformly, then each option uniformly.
_PROFILES = {
    "Apple": (
        (13.3, "IPS Panel Retina Display 2560x1600",
         ("Intel Core i5 2.3GHz",), "Intel Iris Plus Graphics 640", (8, 16),
         ("128GB SSD", "256GB SSD"), ("macOS",), "1.37kg"),
        (13.3, "IPS Panel Retina Display 2560x1600",
         ("Intel Core i5 3.1GHz",), "Intel Iris Plus Graphics 650", (8, 16),
         ("256GB SSD", "512GB SSD"), ("macOS",), "1.37kg"),
        (13.3, "1440x900", ("Intel Core i5 1.8GHz",), "Intel HD Graphics 6000", (8,),
         ("128GB Flash Storage", "256GB Flash Storage"), ("macOS", "Mac OS X"), "1.35kg"),
        (15.4, "IPS Panel Retina Display 2880x1800",
         ("Intel Core i7 2.8GHz", "Intel Core i7 2.9GHz"), None, (16,),
         ("256GB SSD", "512GB SSD"), ("macOS",), "1.83kg"),
        (12.0, "IPS Panel Retina Display 2304x1440",
         ("Intel Core M m3 1.2GHz",), "Intel HD Graphics 615", (8,),
         ("256GB SSD", "512GB SSD"), ("macOS",), "0.92kg"),
    ),
    "Microsoft": (
        (13.5, "Touchscreen 2256x1504",
         ("Intel Core i5 7200U 2.5GHz", "Intel Core i7 7660U 2.5GHz"), None, (4, 8, 16),
         ("128GB SSD", "256GB SSD", "512GB SSD"), ("Windows 10 S",), "1.252kg"),
    ),
    "Google": (
        (12.3, "Touchscreen 2400x1600",
         ("Intel Core i5 7Y57 1.2GHz", "Intel Core i7 7Y75 1.3GHz"), None, (8, 16),
         ("128GB SSD", "256GB SSD", "512GB SSD"), ("Chrome OS",), "1.1kg"),
    ),
    "Samsung ARM": (
        (12.3, "IPS Panel Touchscreen 2400x1600", ("Samsung Cortex A72&A53 2.0GHz",),
         "ARM Mali T860 MP4", (4,), ("32GB Flash Storage",), ("Chrome OS",), "1.15kg"),
    ),
}

_COMPANY_PREMIUM = {
    "Acer": -0.12, "Apple": 0.22, "Asus": 0.0, "Chuwi": -0.30, "Dell": 0.08, "Fujitsu": -0.05,
    "Google": 0.30, "HP": 0.06, "Huawei": 0.10, "LG": 0.35, "Lenovo": 0.02, "MSI": 0.15,
    "Mediacom": -0.30, "Microsoft": 0.25, "Razer": 0.40, "Samsung": 0.15, "Toshiba": 0.10,
    "Vero": -0.40, "Xiaomi": 0.0,
}
_TYPE_PREMIUM = {NB: 0.0, GM: 0.0, UB: 0.12, CV: 0.06, WS: 0.20, NT: -0.05}
_OS_PREMIUM = {"Windows 10": 0.0, "Windows 10 S": 0.0, "Windows 7": 0.06, "No OS": -0.15,
               "Linux": -0.10, "Chrome OS": -0.05, "Android": -0.10, "macOS": 0.05,
               "Mac OS X": 0.0}

_LOG_PRICE_BASE = 9.46
_NOISE_SD = 0.19


# ----------------------------------------------------------------------------- helpers

def _choose(rng: np.random.Generator, tables: dict, groups: np.ndarray) -> np.ndarray:
    """Draw one value per row from ``tables[group_of_row]`` (one uniform per row)."""
    u = rng.random(len(groups))
    out = np.empty(len(groups), dtype=object)
    for group, table in tables.items():
        mask = groups == group
        if not mask.any():
            continue
        values = list(table)
        weights = np.array([table[v] for v in values], dtype=np.float64)
        cdf = np.cumsum(weights) / weights.sum()
        idx = np.minimum(np.searchsorted(cdf, u[mask], side="right"), len(values) - 1)
        picked = np.empty(len(values), dtype=object)
        picked[:] = values
        out[mask] = picked[idx]
    return out


def _format_weight(kg: float, u: float) -> str:
    """``2.2kg`` mostly; sometimes the long forms ``2.20kg`` / ``2.0kg`` the data also has."""
    text = f"{kg:.2f}"
    if u < 0.1:
        return text + "kg"
    short = text.rstrip("0").rstrip(".")
    if "." not in short and u < 0.55:
        short += ".0"
    return short + "kg"


def _screen(res: str, ips: bool, touch: bool, u_label: float, u_order: float) -> str:
    label, share = _RES_LABEL.get(res, ("", 0.0))
    if u_label >= share:
        label = ""
    if touch and label:
        body = f"Touchscreen / {label}" if u_order < 0.03 else f"{label} / Touchscreen"
    elif touch:
        body = "Touchscreen"
    else:
        body = label
    parts = (["IPS Panel"] if ips else []) + ([body] if body else []) + [res]
    return " ".join(parts)


def _memory_gb(memory: str) -> tuple[float, float, float]:
    """``(ssd, flash, hdd_or_hybrid)`` GB of a memory string from the tables above."""
    ssd = flash = disk = 0.0
    for part in memory.split("+"):
        size, kind = part.split(None, 1)
        gb = float(size[:-2]) * (1000.0 if size.endswith("TB") else 1.0)
        if kind == "SSD":
            ssd += gb
        elif kind.startswith("Flash"):
            flash += gb
        else:
            disk += gb
    return ssd, flash, disk


# ----------------------------------------------------------------------------- public

def generate_laptops(n: int = 1300, seed: int = 20261123) -> pd.DataFrame:
    """Return ``n`` synthetic laptops with :data:`LAPTOP_COLUMNS`, fully determined by ``seed``.

    Raw values use the formats of the public laptop-price CSV (``"8GB"``, ``"1.37kg"``,
    ``"128GB SSD +  1TB HDD"``, ...); ``Inches`` and ``Price`` are floats.

    Raises:
        InputError: ``n`` is not a non-negative integer.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"the number of rows must be a non-negative integer, got {n!r}")
    n = int(n)
    rng = np.random.default_rng(seed)

    types = _choose(rng, {"all": _TYPES}, np.full(n, "all", dtype=object)).astype(str)
    company = _choose(rng, _COMPANIES, types).astype(str)
    inches = _choose(rng, _INCHES, types).astype(np.float64)

    budget_brand = np.isin(company, _BUDGET_BRANDS)
    cpu = _choose(rng, _CPUS, np.where(budget_brand, _BUDGET, types)).astype(object)
    kind = np.array([_CPU_INFO[c][2] for c in cpu], dtype=object)
    budget = np.isin(kind, ("budget", "amd_budget")) | budget_brand
    spec_group = np.where(budget, _BUDGET, types)
    ram = _choose(rng, _RAM, spec_group).astype(np.float64)
    memory = _choose(rng, _MEMORY, spec_group)
    opsys = _choose(rng, _OPSYS, spec_group)

    # GPU: integrated part of the CPU, or a discrete card that fits the type and CPU vendor.
    share = np.array([_DISCRETE_SHARE[t] for t in types])
    share = np.where(kind == "high", np.maximum(share, 0.9), share)
    share = np.where(np.isin(kind, ("amd_main",)), 0.5 * (types == NB), share)
    share = np.where(np.isin(kind, ("budget", "amd_budget", "low", "arm")), 0.0, share)
    share = np.where(kind == "amd_perf", 1.0, share)
    u_discrete = rng.random(n)
    amd_cpu = np.array([k.startswith("amd") for k in kind])
    gpu_group = np.where(types == GM, "gaming", np.where(types == WS, "workstation",
                                                         "mainstream"))
    gpu_group = np.where(amd_cpu, np.where(types == GM, "gaming_amd", "mainstream_amd"),
                         gpu_group)
    gpu_group = np.where(kind == "amd_perf", "gaming_amd", gpu_group)
    discrete = _choose(rng, _DISCRETE, gpu_group)
    integrated = np.array([_CPU_INFO[c][1] for c in cpu], dtype=object)
    u_iris = rng.random(n)
    premium_design = np.isin(types, (UB, CV)) & (u_iris < 0.12)
    swapped = np.array([_IRIS_SWAP.get(g, g) for g in integrated], dtype=object)
    integrated = np.where(premium_design, swapped, integrated)
    gpu = np.where(u_discrete < share, discrete, integrated)

    # Screen.
    res = _choose(rng, _RESOLUTIONS, types)
    u_ips, u_touch, u_label, u_order = (rng.random(n) for _ in range(4))
    ips = u_ips < np.array([_IPS_SHARE[t] for t in types])
    touch = u_touch < np.array([_TOUCH_SHARE[t] for t in types])
    screen = np.array([_screen(r, i, t, ul, uo)
                       for r, i, t, ul, uo in zip(res, ips, touch, u_label, u_order)],
                      dtype=object)

    # Weight from type and size.
    base, slope, sd, lightest, heaviest = (
        np.array([_WEIGHT[t][k] for t in types]) for k in range(5))
    weight_noise = rng.standard_normal(n)
    expected_kg = base + slope * (inches - 15.6)
    kg = np.round(np.clip(expected_kg + sd * weight_noise, lightest, heaviest), 2)
    u_wfmt = rng.random(n)
    weight = np.array([_format_weight(k, u) for k, u in zip(kg, u_wfmt)], dtype=object)

    # Fixed designs (Apple, Surface, Pixelbook, Samsung's ARM Chromebook) replace the above.
    profile_name = np.where(company == "Apple", "Apple", np.where(
        company == "Microsoft", "Microsoft", np.where(company == "Google", "Google", "")))
    u_arm = rng.random(n)
    profile_name = np.where((company == "Samsung") & (types == CV) & (u_arm < 0.5),
                            "Samsung ARM", profile_name)
    u_profile = rng.random((n, 5))
    for row in np.flatnonzero(profile_name != ""):
        models = _PROFILES[str(profile_name[row])]
        u = u_profile[row]
        model = models[min(int(u[0] * len(models)), len(models) - 1)]
        size, scr, cpus, gpu_name, rams, mems, oses, wt = model

        def pick(options, x):
            return options[min(int(x * len(options)), len(options) - 1)]

        cpu[row] = pick(cpus, u[1])
        gpu[row] = gpu_name or _CPU_INFO[cpu[row]][1]
        ram[row] = pick(rams, u[2])
        memory[row] = pick(mems, u[3])
        opsys[row] = pick(oses, u[4])
        inches[row], screen[row], weight[row] = size, scr, wt
        kg[row] = float(wt[:-2])
        expected_kg[row] = kg[row]
        res[row] = scr.rsplit(" ", 1)[-1]
        ips[row] = "IPS" in scr
        touch[row] = "Touchscreen" in scr

    # Price: log-linear in the specification plus noise.
    cpu_premium = np.array([_CPU_INFO[c][0] for c in cpu])
    ghz = np.array([float(c.rsplit(" ", 1)[-1][:-3]) for c in cpu])
    gpu_premium = np.array([_GPU_PREMIUM[g] for g in gpu])
    storage = np.array([_memory_gb(m) for m in memory]).reshape(n, 3)
    pixels = np.array([[float(v) for v in r.split("x")] for r in res]).reshape(n, 2)
    ppi = np.sqrt(pixels[:, 0] ** 2 + pixels[:, 1] ** 2) / inches
    log_price = (
        _LOG_PRICE_BASE
        + 0.26 * np.log2(ram)
        + 0.12 * np.log2(1.0 + storage[:, 0] / 64.0)
        + 0.04 * np.log2(1.0 + storage[:, 1] / 16.0)
        + 0.03 * (storage[:, 2] > 0)
        + 0.85 * cpu_premium + 0.10 * (ghz - 2.0)
        + gpu_premium
        + 0.0018 * (ppi - 100.0)
        + 0.07 * touch + 0.06 * ips
        + np.array([_COMPANY_PREMIUM[c] for c in company])
        + np.array([_TYPE_PREMIUM[t] for t in types])
        + np.array([_OS_PREMIUM[o] for o in opsys])
        - 0.15 * (kg - expected_kg)
        + _NOISE_SD * rng.standard_normal(n)
    )
    price = np.round(np.exp(log_price), 4)

    # Rare alternative spellings of some GPU names, as in the public file.
    u_variant = rng.random(n)
    for name, (variant, variant_share) in _GPU_VARIANTS.items():
        gpu = np.where((gpu == name) & (u_variant < variant_share), variant, gpu)

    return pd.DataFrame({
        "Company": pd.Series(company, dtype=object),
        "TypeName": pd.Series(types, dtype=object),
        "Inches": inches,
        "ScreenResolution": pd.Series(screen, dtype=object),
        "Cpu": pd.Series(cpu, dtype=object),
        "Ram": pd.Series([f"{int(r)}GB" for r in ram], dtype=object),
        "Memory": pd.Series(memory, dtype=object),
        "Gpu": pd.Series(gpu, dtype=object),
        "OpSys": pd.Series(opsys, dtype=object),
        "Weight": pd.Series(weight, dtype=object),
        "Price": price,
    }, columns=list(LAPTOP_COLUMNS))


def write_laptops_csv(path: str | os.PathLike, n: int = 1300, seed: int = 20261123) -> None:
    """Write :func:`generate_laptops` as CSV (no index column), byte-identical per (n, seed).

    Floats are written with ``repr`` (shortest round-trip form, platform independent) and
    lines end in ``\\n``.

    Raises:
        OutputError: the file cannot be written (missing folder, no permission, ...).
    """
    frame = generate_laptops(n, seed).astype(object)
    for column in ("Inches", "Price"):
        frame[column] = [repr(float(x)) for x in frame[column]]
    try:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
    except OSError as error:
        raise OutputError(f"cannot write {os.fspath(path)}: {error.strerror or error}") from error
