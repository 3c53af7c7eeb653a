# Wall time against N for both tools, medians with min/max bars, log-log.
# Called by bench/bench.lua as: gnuplot -e "datafile='X.dat'; outfile='X.png'" bench/plot.gp
set terminal pngcairo size 800,500 noenhanced
set output outfile
set title "atom vs kubectl apply --server-side + wait (simulated cluster)"
set xlabel "objects per release (N)"
set ylabel "wall time until ready (s)"
set logscale xy
set grid
set key top left
plot datafile using 1:2:3:4 with yerrorlines lw 2 title "atom run", \
     datafile using 1:5:6:7 with yerrorlines lw 2 title "kubectl apply + wait"
