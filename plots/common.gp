# common.gp - terminal, colours and style shared by every figure.
# The caller sets: fmt ('png' or 'svg'), out (output file), data (the
# directory written by plots/prepare.py).
if (fmt eq 'svg') {
	set terminal svg size 1000,620 dynamic font 'DejaVu Sans,13' background rgb 'white'
} else {
	set terminal pngcairo size 1000,620 font 'DejaVu Sans,11' background rgb 'white'
}
# Backend names contain '-' and may contain '_': print them as written.
set termoption noenhanced
set output out
load data.'/vars.gp'
# vars.gp (plots/prepare.py) gives each backend a line type with its
# colour, assigned by name (compare/suite.py): the same in every figure.
set grid back lc rgb '#dddddd'
set border lc rgb '#444444'
set key outside right top box opaque samplen 2 spacing 1.2
set datafile missing 'NaN'
set format y '%.3g'

# Tic labels for a logarithmic time axis whose values are nanoseconds.
ns_tics = "set ytics ('1 ns' 1, '2 ns' 2, '5 ns' 5, '10 ns' 10, '20 ns' 20, '50 ns' 50, '100 ns' 100, '200 ns' 200, '500 ns' 500, '1 µs' 1000, '2 µs' 2000, '5 µs' 5000, '10 µs' 10000, '20 µs' 20000, '50 µs' 50000, '100 µs' 100000, '200 µs' 200000, '500 µs' 500000, '1 ms' 1e+06, '2 ms' 2e+06, '5 ms' 5e+06, '10 ms' 1e+07, '20 ms' 2e+07, '50 ms' 5e+07, '100 ms' 1e+08, '200 ms' 2e+08, '500 ms' 5e+08)"
# Tic labels for a logarithmic axis whose values are bytes.
bytes_tics = "set ytics ('16 B' 16, '32 B' 32, '64 B' 64, '128 B' 128, '256 B' 256, '512 B' 512, '1 KiB' 1024, '2 KiB' 2048, '4 KiB' 4096, '8 KiB' 8192, '16 KiB' 16384, '32 KiB' 32768, '64 KiB' 65536)"
