#!/usr/bin/env python3
"""Module circles: within each crate under crates/, module A reaching module B (through
`use crate::…`, `super::…` or a path in code) while B reaches A, directly or around a
loop. Comments and `#[cfg(test)] mod tests` are left out; a module's references to its own
ancestors do not count (children use what their parent declares). Prints each circle and
exits 1 when there is one. Run from the repository root (tests/run does)."""
import re,os,sys
def strip_tests(s):
    m=re.search(r'#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod \w+\s*\{', s)
    return s if m is None else s[:m.start()]
def modname(root, path):
    rel=os.path.relpath(path, root)[:-3].split('/')
    if rel[-1] in ('mod','lib','main'): rel=rel[:-1]
    return tuple(rel)
allc=[]
for crate in sorted(os.listdir('crates')):
    root=f'crates/{crate}/src'
    if not os.path.isdir(root): continue
    mods={}
    for dp,dn,fn in os.walk(root):
        for f in fn:
            if f.endswith('.rs'):
                p=os.path.join(dp,f); mods[modname(root,p)]=p
    g={m:set() for m in mods}
    for m,p in mods.items():
        s=strip_tests(open(p).read()); s=re.sub(r"//[^\n]*", "", s)
        for path in re.findall(r'\b((?:crate|super|self)(?:::\w+)+)', s):
            segs=path.split('::')
            if segs[0]=='crate': base=(); rest=segs[1:]
            elif segs[0]=='self': base=m; rest=segs[1:]
            else:
                base=m; rest=segs
                while rest and rest[0]=='super': base=base[:-1]; rest=rest[1:]
            # longest module prefix
            best=None
            cur=base
            for r in rest:
                cur=cur+(r,)
                if cur in mods: best=cur
                else: break
            if best and best!=m and not (m[:len(best)]==best):
                g[m].add(best)
        # also use super::{a,b}
        for grp in re.findall(r'use (super|crate)::\{([^}]*)\}', s):
            base=() if grp[0]=='crate' else m[:-1]
            for n in re.findall(r'\b(\w+)\b', grp[1]):
                t=base+(n,)
                if t in mods and t!=m and not m[:len(t)]==t: g[m].add(t)
    idx={};low={};st=[];on=set();res=[];c=[0]
    sys.setrecursionlimit(100000)
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in g.get(v,()):
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v:break
            if len(comp)>1: res.append(comp)
    for v in g:
        if v not in idx: sc(v)
    for comp in res:
        print(crate, sorted('::'.join(x) or 'crate root' for x in comp))
        allc.append(comp)
if allc:
    print(f'{len(allc)} module circle(s); break them with a small shared module (docs/design-notes.md)')
    sys.exit(1)
print('no module circles')
