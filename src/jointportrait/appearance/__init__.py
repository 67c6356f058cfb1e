"""Appearance: colour spaces, spherical-harmonics lighting and diffuse shading (paper Sec. 5.1, Suppl. 8.2).

A low layer shared by the synthetic studio data (:mod:`jointportrait.data.synth`), the face
tracker's photometric stage (:mod:`jointportrait.tracking`) and relighting
(:mod:`jointportrait.applications.relight`); it imports nothing else of the project.

- :mod:`.color`: sRGB <-> linear RGB (IEC 61966-2-1);
- :mod:`.sh_lighting`: the 9-coefficient SH irradiance model and a studio light rig (torch);
- :mod:`.shading`: Lambert and SH shading of normal maps and the SH least-squares fit (numpy).
"""
