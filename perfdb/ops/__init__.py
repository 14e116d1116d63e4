"""Op families. Importing this package registers every case type in OP_CASES."""
from perfdb.ops.attention import AttentionDecodeCase, AttentionPrefillCase
from perfdb.ops.base import OP_CASES, OpCase
from perfdb.ops.comm import CommCase
from perfdb.ops.dsv4_module import Dsv4ModuleDecodeCase, Dsv4ModulePrefillCase
from perfdb.ops.elementwise import ElementwiseCase
from perfdb.ops.gemm import GemmCase
from perfdb.ops.linear import LinearDecodeCase, LinearPrefillCase
from perfdb.ops.mhc import MhcModuleCase
from perfdb.ops.mla import MlaDecodeCase, MlaPrefillCase
from perfdb.ops.moe import MoeCase
from perfdb.ops.sparse import SparseDecodeCase, SparsePrefillCase
from perfdb.ops.sparse_module import (
    DsaModuleDecodeCase,
    DsaModulePrefillCase,
    MsaModuleDecodeCase,
    MsaModulePrefillCase,
)

__all__ = [
    "OP_CASES", "OpCase", "GemmCase", "AttentionPrefillCase", "AttentionDecodeCase", "MlaPrefillCase",
    "MlaDecodeCase", "MoeCase", "CommCase", "ElementwiseCase", "LinearPrefillCase", "LinearDecodeCase",
    "SparsePrefillCase", "SparseDecodeCase", "DsaModulePrefillCase", "DsaModuleDecodeCase",
    "MsaModulePrefillCase", "MsaModuleDecodeCase", "MhcModuleCase", "Dsv4ModulePrefillCase",
    "Dsv4ModuleDecodeCase",
]
