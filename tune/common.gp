# common.gp - terminal and style of the tuning figures (tune/*.gp).
# The caller sets fmt ('png' or 'svg'), out (the file) and data (the
# directory tune/tune.py wrote: *.dat and vars.gp).
if (fmt eq 'svg') {
	set terminal svg size 900,600 dynamic font 'DejaVu Sans,12' background rgb 'white'
} else {
	set terminal pngcairo size 900,600 font 'DejaVu Sans,10' background rgb 'white'
}
# Configuration names hold '=' and ',' and '#': print them as written.
set termoption noenhanced
set output out
load data.'/vars.gp'
set grid back lc rgb '#dddddd'
set border lc rgb '#444444'
set datafile missing 'NaN'
