"""The paper's experiments in miniature (issue 16; paper Sec. 5.2, 9, Tables 1-2, Fig. 9).

:mod:`~jointportrait.reproduce.base_model` packs and samples the pretrained base
(the SD 1.5 stand-in shipped with the package); the protocol itself runs every
method and seed from that base with equal optimizer steps and writes the tables.
"""
