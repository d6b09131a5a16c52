"""The paper's published numbers (Li et al., VQDNA, ICML 2024: Tables 1, 2, 6-9)
and how this study's tokenizer and task names map onto them. Data only: tables look them up."""

from __future__ import annotations

#: our tokenizer name -> the model name the paper's numbers are published under (Table 1 / 2)
PAPER_NAMES = {
    "hrq": "VQDNA-HRQ",
    "vq": "VQDNA-VQ",
    "bpe": "DNABERT-2",
    "kmer6": "DNABERT-6mer",
    "kmer6_nonoverlap": "NT-6mer",
    "char": "HyenaDNA",
}
#: our task name -> the paper's dataset it stands for in Tables 1, 7-9 (GUE covid = CVC; the
#: covid-mini who_variant task is our CVC analogue on other genomes: same question, other data)
PAPER_TASKS = {"covid": "CVC", "EMP_H3": "H3"}
#: in the ablation tables covid-mini stands in for CVC (different genomes: compare trends only)
ABLATION_TASK_ALIASES = {**PAPER_TASKS, "who_variant": "CVC"}
#: Table 1 (CVC, macro-F1 x100) by paper model name, per stage
PAPER_TABLE1 = {
    "finetune": {
        "CVC": {
            "VQDNA-HRQ": 74.32,
            "VQDNA-VQ": 73.16,
            "DNABERT-2": 71.02,
            "DNABERT-6mer": 55.50,
            "NT-6mer": 66.73,
            "HyenaDNA": 54.10,
        }
    },
    "linear_probe": {
        "CVC": {
            "VQDNA-HRQ": 48.87,
            "VQDNA-VQ": 44.76,
            "DNABERT-2": 36.53,
            "DNABERT-6mer": 23.54,
            "NT-6mer": 23.54,
            "HyenaDNA": 5.47,
        }
    },
}

# Paper ablations, Li et al. 2024, Tables 7 (codebook size), 8 (code dimension), 9 (mask
# ratio). value -> tokenizer -> quantity -> %.
# Tables 7/8: "recon" = reconstruction accuracy, "linear_probe:CVC" = linear-probe F1 on CVC.
# Table 9: fine-tuning H3 MCC and CVC F1.
_T78 = ("recon", "linear_probe:CVC")
PAPER_ABLATIONS = {
    "codebook_size": {
        128: {"vq": dict(zip(_T78, (98.2, 42.1))), "hrq": dict(zip(_T78, (98.4, 42.8)))},
        256: {"vq": dict(zip(_T78, (98.8, 43.6))), "hrq": dict(zip(_T78, (99.1, 47.7)))},
        512: {"vq": dict(zip(_T78, (99.5, 44.8))), "hrq": dict(zip(_T78, (99.6, 48.9)))},
        1024: {"vq": dict(zip(_T78, (99.6, 44.5))), "hrq": dict(zip(_T78, (99.8, 48.2)))},
    },
    "code_dim": {
        256: {"vq": dict(zip(_T78, (99.4, 44.3))), "hrq": dict(zip(_T78, (99.5, 48.2)))},
        384: {"vq": dict(zip(_T78, (99.5, 44.8))), "hrq": dict(zip(_T78, (99.6, 48.9)))},
        768: {"vq": dict(zip(_T78, (99.6, 44.6))), "hrq": dict(zip(_T78, (99.6, 48.9)))},
        1024: {"vq": dict(zip(_T78, (99.8, 44.7))), "hrq": dict(zip(_T78, (99.7, 48.8)))},
    },
    "mask_ratio": {
        r: {
            "vq": {"finetune:H3": vh3, "finetune:CVC": vcvc},
            "hrq": {"finetune:H3": hh3, "finetune:CVC": hcvc},
        }
        for r, vh3, vcvc, hh3, hcvc in [
            (0.15, 77.9, 72.6, 78.3, 73.7),
            (0.20, 78.3, 73.4, 78.8, 74.2),
            (0.25, 78.6, 73.2, 79.2, 74.3),
            (0.30, 77.4, 73.0, 78.6, 73.9),
        ]
    },
}

#: Table 6 (long-sequence species classification, HyenaDNA's 5-way mammal task, Top-1 accuracy
#: x100) by paper model name and sequence length in bp
PAPER_TABLE6 = {
    "HyenaDNA": {1000: 61.13, 20000: 87.42, 32000: 93.42},
    "DNABERT-2": {1000: 61.04, 20000: 86.83, 32000: 99.28},
    "VQDNA-HRQ": {1000: 61.57, 20000: 88.05, 32000: 99.46},
}
#: our Table 6 analogue: task name -> (species set, sequence length in bp), benchmarks/embedded.yaml
SPECIES_TASKS = {
    "species_1k": ("Drosophila (6)", 1000),
    "species_10k": ("Drosophila (6)", 10000),
    "species_32k": ("Drosophila (6)", 32000),
    "yeast_species_1k": ("Saccharomyces (3)", 1000),
    "yeast_species_10k": ("Saccharomyces (3)", 10000),
}
