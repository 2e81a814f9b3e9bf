"""Checks that the native addon runs on any x86-64 CPU: disassembles build/Release/sdc_cpu.node
(objdump) and lists every function outside the per-ISA kernels (namespaces sdc::avx2, sdc::avx512;
runtime/executors/native/src/isa.h) that uses an instruction beyond baseline x86-64 (VEX/EVEX
encodings, ymm/zmm/mask registers, BMI, LZCNT, POPCNT, MOVBE). Exit 1 when there is one.

    python3 scripts/check-native-isa.py [path/to/sdc_cpu.node]"""
import re,subprocess,sys
path=sys.argv[1] if len(sys.argv)>1 else "build/Release/sdc_cpu.node"
out=subprocess.run(["objdump","-d","-C","--no-show-raw-insn",path],capture_output=True,text=True,check=True).stdout
fn=None;bad={};seen=set()
bmi={'andn','shlx','shrx','sarx','rorx','bzhi','pdep','pext','tzcnt','lzcnt','blsr','blsi','blsmsk','movbe','popcnt'}
for line in out.splitlines():
    m=re.match(r'^[0-9a-f]+ <(.*)>:$',line)
    if m: fn=m.group(1); continue
    if fn and '\t' in line:
        ins=line.split('\t',1)[1].strip()
        parts=ins.split(None,1); mn=parts[0] if parts else ''
        ops=parts[1].split('#')[0] if len(parts)>1 else ''
        if mn.startswith('v') or mn in bmi or mn.startswith('k') and mn[1:4] in ('mov','and','or','xor','not','shi','tes','ort','add','unp') or re.search(r'%[yz]mm|%k[0-7]\b',ops):
            seen.add(fn.split('::')[1] if fn.startswith('sdc::') else fn[:40])
            if 'sdc::avx2::' in fn or 'sdc::avx512::' in fn: continue
            bad.setdefault(fn,ins)
for f,i in bad.items(): print(f[:200],'|',i)
print(len(bad),'functions outside sdc::avx2/avx512 use instructions beyond x86-64; namespaces that do:',sorted(seen)[:10])
sys.exit(1 if bad else 0)
