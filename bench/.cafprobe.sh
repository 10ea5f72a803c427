cd /tmp; mkdir -p cafp && cd cafp
[ -f /work/main/debs/prefix/.unpacked ] || { mkdir -p /work/main/debs/prefix; for f in /work/main/debs/*.deb; do dpkg -x "$f" /work/main/debs/prefix; done; }
P=/work/main/debs/prefix/usr/include
printf '#include <caf/all.hpp>\nint main(){ return caf::atom_uint(caf::atom("connect")) == 0; }\n' > a.cpp
for cxx in /opt/gcc/bin/g++ g++ g++-12 g++-13 g++-14 clang++ clang++-18; do command -v $cxx >/dev/null || { echo "$cxx: none"; continue; }; echo "== $cxx $($cxx -dumpversion)"; $cxx -std=c++17 -I$P -c a.cpp -o a.o 2>&1 | grep -m3 error || echo ok; done
ls /usr/bin | grep -E "^(g\+\+|clang)" | head
